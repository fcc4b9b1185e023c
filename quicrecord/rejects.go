package quicrecord

import "slices"

// rejectLog keeps the peer's rejections of a sender's records until a
// Barrier reports them: each to exactly one Barrier, the first that
// returns covering it. A RecordStream keeps one under smu, a
// ResumableStream one under its mu, across its connections.
//
// The first MaxReportedRejections unreported rejections are kept whole;
// later ones are only counted, so memory stays bounded whatever the peer
// rejects and however rarely Barrier is called. To count exactly how many
// of them a Barrier covers without keeping their sequence numbers, a
// counted rejection is filed under the smallest target of the Barriers
// waiting when it arrived that covers it. A Barrier that starts later
// covers every rejection received so far: its target, the last record
// sent, is at least the sequence number of any record rejected.
type rejectLog struct {
	// kept are the first unreported rejections, in sequence order. While
	// any rejection is only counted, new ones are counted too, so kept
	// stays the lowest unreported ones.
	kept []RecordError
	// waits are the targets of waiting Barriers, ascending, each with the
	// number of counted rejections filed under it.
	waits []rejectWait
	// above counts the counted rejections above every waiting target.
	above int
}

// rejectWait is one waiting Barrier target.
type rejectWait struct {
	target  uint64
	barrier int // Barriers waiting for target
	counted int // counted rejections in (previous target, target]
}

// add records a rejection.
func (l *rejectLog) add(re RecordError) {
	if len(l.kept) < MaxReportedRejections && l.counted() == 0 {
		l.kept = append(l.kept, re)
		return
	}
	i, _ := slices.BinarySearchFunc(l.waits, re.Seq, func(w rejectWait, seq uint64) int {
		if w.target < seq {
			return -1
		}
		return 1
	})
	if i == len(l.waits) {
		l.above++
		return
	}
	l.waits[i].counted++
}

// counted is the number of rejections counted but not kept.
func (l *rejectLog) counted() int {
	n := l.above
	for _, w := range l.waits {
		n += w.counted
	}
	return n
}

// wait registers a Barrier waiting for target, which is at least every
// sequence number rejected so far (the last record sent). The counted
// rejections above the other targets move under it.
func (l *rejectLog) wait(target uint64) {
	if n := len(l.waits); n > 0 && l.waits[n-1].target == target {
		l.waits[n-1].barrier++
	} else {
		l.waits = append(l.waits, rejectWait{target: target, barrier: 1})
	}
	l.waits[len(l.waits)-1].counted += l.above
	l.above = 0
}

// abandon unregisters a Barrier for target that failed: its counted
// rejections move to the next target up, or above every target.
func (l *rejectLog) abandon(target uint64) {
	i := l.find(target)
	if l.waits[i].barrier--; l.waits[i].barrier > 0 {
		return
	}
	if i+1 < len(l.waits) {
		l.waits[i+1].counted += l.waits[i].counted
	} else {
		l.above += l.waits[i].counted
	}
	l.waits = slices.Delete(l.waits, i, i+1)
}

// take unregisters a Barrier for target that succeeded and removes the
// rejections up to target, returned as a *RejectedError (nil if none).
func (l *rejectLog) take(target uint64) *RejectedError {
	i := l.find(target)
	count := 0
	for j := 0; j <= i; j++ {
		count += l.waits[j].counted
		l.waits[j].counted = 0
	}
	if l.waits[i].barrier--; l.waits[i].barrier == 0 {
		l.waits = slices.Delete(l.waits, i, i+1)
	}
	k := 0
	for k < len(l.kept) && l.kept[k].Seq <= target {
		k++
	}
	if k+count == 0 {
		return nil
	}
	re := &RejectedError{Records: slices.Clone(l.kept[:k]), Count: k + count}
	l.kept = slices.Delete(l.kept, 0, k)
	return re
}

// find returns the index of target in waits; it is there.
func (l *rejectLog) find(target uint64) int {
	i, _ := slices.BinarySearchFunc(l.waits, target, func(w rejectWait, t uint64) int {
		switch {
		case w.target < t:
			return -1
		case w.target > t:
			return 1
		}
		return 0
	})
	return i
}
