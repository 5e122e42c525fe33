"""Analysis of a stored study: trial tables, the article's claims, figures and the HTML report."""
