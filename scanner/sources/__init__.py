"""Inputs other than a bucket listing: URL lists (`urls`)."""
