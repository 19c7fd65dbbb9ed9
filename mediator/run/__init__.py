"""A run, knowing no trigger: request, jobs, read, push, report."""
