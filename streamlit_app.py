"""Entry point: a router over the pages (``streamlit run streamlit_app.py``)."""
import streamlit as st

st.set_page_config(page_title="XAI Dashboard", page_icon="🔍", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon="🏠", default=True),
    st.Page("pages/explain.py", title="Explain", icon="🔍"),
]

st.navigation(PAGES).run()
