"""EdgeAudit dashboard: Streamlit over the run reports. It reads finished runs; it never
trains, converts or evaluates. Start it with `edgeaudit dashboard --reports DIR`.

One file per page under views/; shared helpers in common.py.
"""

import streamlit as st

st.set_page_config(page_title="EdgeAudit dashboard", page_icon="🛡️", layout="wide")

PAGES = [
    st.Page("views/runs.py", title="Runs", icon=":material/table_rows:", default=True),
    st.Page("views/compare.py", title="Compare runs", icon=":material/compare_arrows:"),
    st.Page("views/tradeoffs.py", title="Edge trade-offs", icon=":material/speed:"),
    st.Page("views/fairness.py", title="Fairness", icon=":material/balance:"),
    st.Page("views/explanations.py", title="Explanations", icon=":material/lightbulb:"),
    st.Page("views/model_card.py", title="Model card & downloads", icon=":material/description:"),
]

st.navigation(PAGES).run()
