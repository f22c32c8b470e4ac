"""petition-catalog: Petitions, authors, lifecycle, search and the public pages."""
