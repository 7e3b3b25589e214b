"""HTTP transport: routes, pages, admin and API. Calls services; holds no domain rules."""
