"""Tests of the universe room."""
