"""The project's benchmarks: one script each (bench/<name>.py, last stdout line one JSON object of figures);
`python -m bench` runs them all and prints one table of the figures against the targets the issues set."""
