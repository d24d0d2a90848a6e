"""Tests of the bars room."""
