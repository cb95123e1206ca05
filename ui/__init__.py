"""Streamlit-side helpers: caching, session-state keys, widgets. Pages import from here and from core."""
