"""The report people look at, and the answers as Prefect artifacts.

One self-contained HTML page (the ten answers with their units and the rows behind them, what each zone
holds, charts by state and region) stored in the lake, and the answers table and summary a Prefect run
shows. Modules by purpose:

- `formats`: how a value is shown (an answer with its unit, bytes, durations), for the page and artifacts;
- `chart_data`: the chart queries (`flows/sql/charts/*.sql`) run by the answers' engine;
- `svg`: horizontal bar charts drawn as inline SVG; `charts`: the report's charts from the chart data;
- `page`: what the page shows (its context), rendered with `flows/templates/report.html.j2`;
- `store`: where the report lives in the lake (written with the lake's atomic replace) and how to open it;
- `artifacts`: the `answers` table and `answers-summary` Markdown artifacts.
"""
