"""The vocabulary every part speaks: values, periods, the run report."""
