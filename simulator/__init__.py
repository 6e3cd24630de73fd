"""A Novacore-compatible test server and a physical model of one energy site."""
