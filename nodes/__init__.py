"""Agents as node factories, the teams they come from, and the model layer they run on."""
