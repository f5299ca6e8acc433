//! Local dead marks with a TTL, shared by both route sources (stub: replaced by the routes work).
