// Package netapp reports a NetApp ONTAP volume's performance through the
// ONTAP REST API: GET /api/storage/volumes?name=<volume>&fields=metric with
// HTTP basic authentication, following the collection's _links.next, and
// reading the volume's "metric" object (iops, throughput in bytes per
// second and latency in microseconds, each with read and write, over
// ONTAP's last 15-second sample).
//
// A Volume is safe for concurrent use.
package netapp
