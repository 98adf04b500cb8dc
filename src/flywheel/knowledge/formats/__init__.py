"""One parser per upload format (pdf, docx, html, markdown, csv); plain text is in blocks.py."""
