"""Entry point: ``streamlit run streamlit_app.py``. Only routes; the page list lives in ui/router.py."""
from ui.router import run_app

run_app()
