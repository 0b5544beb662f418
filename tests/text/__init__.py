"""Tests for pipelines.text (a package, so these module names cannot clash with tests of other stages)."""
