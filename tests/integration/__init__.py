"""Tests of the integration in a real Home Assistant against real peers on loopback."""
