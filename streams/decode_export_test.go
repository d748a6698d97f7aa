package streams

import "github.com/jetmetrics/jetmetrics/pkg/series"

// DecodeReference exposes the encoding/json decoder that defines Decode's
// outcome, for tests and benchmarks to compare against.
var DecodeReference = decodeReference

// DecodeScanned runs only the scanner on msg; decided is false where Decode
// would ask the reference.
func DecodeScanned(msg, node string, limits series.Limits) (d *Decoded, decided bool, err error) {
	dec := new(decoder)
	d, err = dec.decode(msg, node, limits)
	if err == errUndecided {
		return nil, false, nil
	}
	return d, true, err
}
