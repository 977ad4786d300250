"""Data the team shares: plans, tasks, protocol messages, roles, run settings and graph state.

Pure data and reducers; this package imports nothing else of ours.
"""
