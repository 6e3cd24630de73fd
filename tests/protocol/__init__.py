"""Tests of the code that needs no Home Assistant: protocol clients and parsers, signs, totals."""
