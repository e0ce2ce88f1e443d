"""HTTP only: the app factory, auth, one router per API dialect, and the error mapping."""
