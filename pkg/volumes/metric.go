package volumes

import (
	"errors"
	"fmt"
	"math"
)

// Metric is one volume's performance: operations per second, bytes per
// second and the mean latency of an operation in microseconds, for reads
// and writes.
type Metric struct {
	IOPSRead         float64 `json:"iops_read"`
	IOPSWrite        float64 `json:"iops_write"`
	BytesReadPerSec  float64 `json:"io_bytes_read"`
	BytesWritePerSec float64 `json:"io_bytes_write"`
	LatencyUsecRead  float64 `json:"io_usec_read"`
	LatencyUsecWrite float64 `json:"io_usec_write"`
}

// ErrGarbage is wrapped by errors about a backend's answer that cannot be a
// volume's performance (missing, negative or not finite figures).
var ErrGarbage = errors.New("implausible performance figures")

// Check returns an error wrapping ErrGarbage if a figure is negative, NaN
// or infinite.
func (m Metric) Check() error {
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"iops_read", m.IOPSRead}, {"iops_write", m.IOPSWrite},
		{"io_bytes_read", m.BytesReadPerSec}, {"io_bytes_write", m.BytesWritePerSec},
		{"io_usec_read", m.LatencyUsecRead}, {"io_usec_write", m.LatencyUsecWrite},
	} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < 0 {
			return fmt.Errorf("%w: %s is %v", ErrGarbage, f.name, f.v)
		}
	}
	return nil
}

// MaxResponseBytes bounds a backend's HTTP answer that the backends read.
const MaxResponseBytes = 4 << 20
