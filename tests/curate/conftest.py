"""Fixtures of the curation tests: the review app served on a loopback port (`served`)."""

from helpers.review_server import served  # noqa: F401  (a fixture, registered by this import)
