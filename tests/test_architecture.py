"""The package's shape: layers whose imports point one way, no cycles, no private names
across modules, and no branch on a family's name outside the family registry."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mlx_generative"

# Bottom to top: a module may import from its own layer and the layers below it only.
LAYERS = [
    ("errors", "version", "console"),
    ("runtime",),
    ("data",),
    ("nn",),
    ("families",),
    ("training",),
    ("evaluation",),
    ("experiments",),
    ("explorer",),  # a web page over training/ and evaluation/, used by api and cli only
    ("api",),
    ("cli", "__main__", "__init__"),
]


def _modules() -> dict[str, Path]:
    """Dotted name (without the package) -> file, e.g. 'families.ddpm.unet'."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, list[str], bool]]:
    """(imported module, imported names, inside a function) for each package import."""
    tree = ast.parse(path.read_text())
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []

    def visit(node, in_function: bool):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.ImportFrom) and child.level:
                base = package[: len(package) - (child.level - 1)] if child.level > 1 else package
                target = ".".join([*base, *(child.module.split(".") if child.module else [])])
                names = [a.name for a in child.names]
                # "from . import parallel" imports a module, not a name
                for n in names:
                    full = f"{target}.{n}" if target else n
                    if full in MODULES:
                        found.append((full, [], inner))
                    else:
                        found.append((target, [n], inner))
            elif isinstance(child, ast.ImportFrom) and (child.module or "").startswith("mlx_generative"):
                target = child.module.removeprefix("mlx_generative").lstrip(".")
                found.append((target, [a.name for a in child.names], inner))
            visit(child, inner)

    visit(tree, False)
    return found


def _layer(module: str) -> int:
    top = module.split(".")[0] or "__init__"
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"module {module!r} is in no layer; add its folder to LAYERS")


def test_every_module_belongs_to_a_layer():
    for name in MODULES:
        _layer(name)


def test_imports_point_one_way_down_the_layers():
    wrong = []
    for name, path in MODULES.items():
        for target, _, _ in _imports(name, path):
            if target and _layer(target) > _layer(name):
                wrong.append(f"{name} imports {target}")
    assert wrong == []


def test_the_import_graph_has_no_cycle():
    graph = {name: {t for t, _, _ in _imports(name, path) if t in MODULES and t != name}
             for name, path in MODULES.items()}
    # A package's __init__ re-exporting its modules is not a cycle of code that runs.
    state, cycle = {}, []

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if nxt in name_of_parent(node):
                continue
            if state.get(nxt) == "open":
                cycle.append(trail + [nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycle == []


def name_of_parent(module: str) -> set[str]:
    """The packages that contain ``module`` (importing a sibling goes through them)."""
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def test_no_module_imports_another_modules_private_names():
    private = [f"{name} imports {target}.{n}" for name, path in MODULES.items()
               for target, names, _ in _imports(name, path) for n in names if n.startswith("_") and n != "__version__"
               and n != "__all__"]
    private += [f"{name} imports the private module {target}" for name, path in MODULES.items()
                for target, _, _ in _imports(name, path) if any(p.startswith("_") and p not in ("__init__", "__main__")
                                                                for p in target.split("."))]
    assert private == []


def test_package_imports_sit_at_the_top_of_each_module():
    local = [f"{name}: {target}" for name, path in MODULES.items() for target, _, inner in _imports(name, path) if inner]
    assert local == []


# Outside the registry a family is asked what it can do, never which one it is.
KIND_BRANCH = re.compile(r"""kind\s*(==|!=)|kind\s+(not\s+)?in\s*[(\[{]|==\s*["'](ae|vae|ddpm|flow|classifier)["']""")


def test_no_branch_on_a_family_name_outside_the_families():
    branches = []
    for name, path in MODULES.items():
        if name.split(".")[0] == "families":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if KIND_BRANCH.search(line.split("#")[0]):
                branches.append(f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}")
    assert branches == []


@pytest.mark.parametrize("line", ['if run.kind == "vae":', "if kind in ('ae', 'vae'):", "x = spec.kind != kind"])
def test_the_branch_check_catches_what_it_is_for(line):
    assert KIND_BRANCH.search(line)


def test_each_family_home_holds_its_objective_next_to_its_equation():
    homes = {
        "families/ae.py": ["def ae_loss", "||x_hat_i - x_i||^2", "class AE(", "def sample("],
        "families/vae.py": ["def vae_loss", "L_t = BCE + beta_t KL", "def kl_beta", "z = mu + sigma * eps",
                            "1/2 sum(mu^2 + sigma^2 - log sigma^2 - 1)", "class VAE(", "def sample("],
        "families/ddpm/family.py": ["def ddpm_loss", "||eps_theta(x_t, t) - eps||^2", "def sample("],
        "families/ddpm/samplers.py": ["class DDPMSampler", "class DDIMSampler", "class DPMSolverSampler",
                                      "def sample_loop"],
        "families/ddpm/schedule.py": ["class Schedule", "def add_noise"],
        "families/flow/path.py": ["x_t = (1 - t) x_0 + t eps", "def interpolate", "def target_velocity",
                                  "def sample_times"],
        "families/flow/family.py": ["def flow_loss", "||v_theta(x_t, t) - (eps - x_0)||^2", "def sample("],
        "families/flow/samplers.py": ["def euler_step", "def heun_step", "def flow_sample_loop"],
        "families/guidance.py": ["def classifier_free_guidance", "def drop_labels"],
    }
    for home, needles in homes.items():
        text = (PACKAGE / home).read_text()
        for needle in needles:
            assert needle in text, f"{home} lacks {needle!r}"


def test_the_unet_never_sees_a_beta_and_the_samplers_never_see_the_unet():
    unet = (PACKAGE / "families/ddpm/unet.py").read_text()
    assert "schedule" not in [t for t, _, _ in _imports("families.ddpm.unet", PACKAGE / "families/ddpm/unet.py")]
    assert "beta" not in unet.split('"""', 2)[2]  # past the docstring
    for module in ("ddpm.samplers", "ddpm.schedule", "flow.samplers", "flow.path"):
        path = PACKAGE / "families" / (module.replace(".", "/") + ".py")
        targets = [t for t, _, _ in _imports(f"families.{module}", path)]
        assert "families.ddpm.unet" not in targets, module


def test_api_train_reads_in_at_most_60_lines():
    import inspect

    import mlx_generative as mg

    assert len(inspect.getsource(mg.api.train).splitlines()) <= 60
