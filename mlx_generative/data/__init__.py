"""IDX bytes to arrays to batches: reading, finding and fetching the data sets, and image grids."""
