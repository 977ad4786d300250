"""What agents act on: workspace files, the run's journal and the shared context store."""
