"""Tests of the promotion room."""
