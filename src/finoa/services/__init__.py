"""Use cases. Each public function is one transaction (unit of work)."""
