"""svc-parser: PDF → text per page and metadata (PyMuPDF), on the CPU."""
