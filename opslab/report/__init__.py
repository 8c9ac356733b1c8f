"""Reports rendered from artifacts only: report.md (markdown.py), report.html and the scorecard page (html.py), their charts."""
