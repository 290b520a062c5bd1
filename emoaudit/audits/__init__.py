"""Built-in audit specifications: data only, a package so that they install inside emoaudit."""
