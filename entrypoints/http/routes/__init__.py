"""The API's routers, one per audience: health, checkout, orders, support, audit."""
