"""Checks of the repository: what hassfest and HACS require, requirements, the deprecation guard."""
