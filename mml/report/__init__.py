"""Reports: paper tables as Markdown and LaTeX."""
