"""What people see: heat-map overlays and colour bars, plotly charts, captions, the exports and the HTML report."""
