// Package volumes holds what every storage backend shares: the
// performance figures a backend reports for one volume (Backend.AI's
// FSPerfMetric). Each backend lives in a package of its own below this one
// (local, purestorage, netapp, httpjson) and knows nothing of the pipeline;
// the volume observer declares the interface it needs of them.
//
// Metric is a plain value, safe to copy between goroutines.
package volumes
