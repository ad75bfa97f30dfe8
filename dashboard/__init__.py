"""The dashboard: server-rendered pages to create, follow and control deliberation sessions."""
