"""Tests of the prep room."""
