// Package compress compresses and decompresses the record section of
// recordmux batches with S2 or zstd (github.com/klauspost/compress), for
// the negotiated batch compression of the wire protocol. It decides per
// batch whether compressing pays, and decodes hostile input without
// panicking, without producing more than the declared length and without
// allocating before that length has been checked against a limit. It
// depends on the standard library and klauspost/compress only; it knows
// nothing of frames or streams.
//
// # Usage
//
// One [Codecs] per endpoint (or per connection) holds the shared zstd
// state; one [Encoder] per stream direction holds the adaptive state:
//
//	codecs := compress.NewCodecs(0)
//	defer codecs.Close()
//
//	// Sender, in the writer loop; peer is the set the peer announced.
//	enc := codecs.NewEncoder(compress.EncoderOptions{Mode: compress.Auto, Peer: peer})
//	out, codec := enc.Compress(buf[:hdr], records) // buf reused batch after batch
//	if codec == compress.None {
//		// send records as they are
//	} else {
//		// send out[hdr:] with codec and len(records) in the header
//	}
//
//	// Receiver, in the reader loop: limit is what a plain batch may hold.
//	recs, err := codecs.Decompress(recvBuf[:0], payload, codec, declaredLen, limit)
//	if errors.Is(err, compress.ErrTooLarge) { ... }
//
// # Deciding what to compress
//
// [Encoder.Compress] sends a batch uncompressed when it is smaller than
// [EncoderOptions.MinSize] (1 KiB by default) or when compressing it
// saved less than 12.5 %. After three such batches in a row it stops
// trying for 8 batches, then tries one (a probe); each probe that fails
// doubles the pause, up to 256 batches, and the first one that pays
// resumes compression at once. Random or already-compressed data thus
// costs one codec call every few hundred batches, and data that becomes
// compressible again is noticed within the pause.
//
// [Auto] uses S2. On the 2-core development VM S2 compresses 64 KiB
// batches of the telemetry corpus (bench/internal/corpus) at about
// 770 MB/s to 1/3.3 of their size and decodes them at 1.8 GB/s; zstd at
// its fastest level compresses at about 310 MB/s to 1/4.9 and decodes at
// 1.3 GB/s. Per input byte zstd costs the two ends about 2 ns more CPU
// and saves 0.1 byte of wire: at the 410 MB/s that quic-go moves on such
// a machine (CPU-bound itself) the CPU costs more than the bytes save;
// on a link below about 48 MB/s (385 Mbit/s) it is the other way round.
// The encoder cannot tell the two apart, so Auto switches to zstd only
// when told the link rate ([Encoder.SetLinkRate]) and when, comparing
// both codecs on one batch every 32, zstd's CPU time plus wire time per
// input byte is the smaller. [ModeS2] and [ModeZstd] use one codec, if
// the peer accepts it.
//
// # Safety
//
// [Codecs.Decompress] checks, in this order and before any allocation:
// the codec, the declared length against the limit, the length the
// compressed data's own header states against the declared one, and for
// zstd the frame profile (single segment, content size present, no
// dictionary). It then grows dst by the declared length (zstd: plus at
// most one block, 128 KiB, of spare capacity) and decodes into that space
// only. Every failure is an [*Error] whose kind errors.Is tells apart:
// [ErrTooLarge], [ErrCorrupt], [ErrLengthMismatch], [ErrUnknownCodec],
// [ErrClosed]. The fuzz targets check that no input panics, returns more
// than declared, or allocates more than the limit plus a constant.
//
// # Concurrency
//
// A [Codecs] is safe for concurrent use: any number of goroutines may
// call Decompress and compress through its encoders at once. At most
// [Codecs.Concurrency] (by default min(GOMAXPROCS, 4)) zstd decodes and as many zstd
// encodes run in parallel; the others wait for a slot. The zstd decoder
// and encoder are created on first use and start no goroutines (they run
// DecodeAll and EncodeAll only). [Codecs.Close] waits for decodes in
// progress and releases the decoder. An [Encoder] belongs to one
// goroutine.
//
// # Memory
//
// A Codecs that never sees zstd holds almost nothing. The zstd encoder
// keeps about 270 KiB per concurrent encode, the decoder block buffers
// that grow with the largest block decoded (up to about 2.7 MiB per
// concurrent decode for a hostile block declaring the most sequences),
// kept for reuse until Close. An Encoder keeps one scratch buffer, used
// only by Auto's comparisons.
//
// # Limitations
//
// Auto's cost model uses CPU costs measured once on one machine class,
// not at run time, and needs the link rate from its caller; without it
// Auto is S2. The back-off counts batches, not time: on a slow stream
// (ten batches a second) that turns compressible after a long
// incompressible stretch, up to 256 batches, 25 seconds, go uncompressed
// before the next probe. S2 and zstd are the only codecs; there are no dictionaries.
package compress
