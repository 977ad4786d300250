"""Orchestration patterns as LangGraph graphs, the runtime that makes them durable, and the CLI."""
