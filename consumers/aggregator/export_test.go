package aggregator

// Refused exposes refused to the black-box tests, which provoke the
// errors it classifies from a real server.
var Refused = refused
