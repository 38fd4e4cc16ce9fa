package signals

// IDs appends the keyed identity hashes of the request to dst: the IFA
// (NormalizeIFA; left out when device.lmt = 1, when the IFA is all zeros,
// or when its ifa_type says it is not a device id: DeviceIFA), the
// household IP of device.ip and of device.ipv6 (NormalizeIP: IPv4, or the
// IPv6 /64; once when both give the same), each user.eids uid as
// IDEID of "source/id", and user.id as IDUserID. The IFA is hashed without
// its type (IFAType), so a conversion carrying the same IFA matches. IDs
// does not allocate once the Request's scratch buffer has grown.
func (r *Request) IDs(h *Hasher, dst []ID) []ID {
	buf := r.scratch[:0]
	var ok bool
	if !r.LMT && DeviceIFA(r.IFAType) {
		if buf, ok = NormalizeIFA(buf[:0], r.IFA); ok {
			dst = append(dst, h.ID(IDIFA, buf))
		}
	}
	var ip4 ID
	if buf, ok = NormalizeIP(buf[:0], r.IP); ok {
		ip4 = h.ID(IDIP, buf)
		dst = append(dst, ip4)
	}
	if buf, ok = NormalizeIP(buf[:0], r.IPv6); ok {
		if id := h.ID(IDIP, buf); id != ip4 {
			dst = append(dst, id)
		}
	}
	for _, e := range r.EIDs {
		if h.household(e.Source) {
			for _, uid := range e.IDs {
				dst = append(dst, h.ID(IDHousehold, uid))
			}
			continue
		}
		for _, uid := range e.IDs {
			buf = append(buf[:0], e.Source...)
			buf = append(buf, '/')
			buf = append(buf, uid...)
			dst = append(dst, h.ID(IDEID, buf))
		}
	}
	if len(r.UserID) > 0 {
		dst = append(dst, h.ID(IDUserID, r.UserID))
	}
	r.scratch = buf
	return dst
}
