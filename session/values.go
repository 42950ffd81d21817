package session

// values are a session's values by key. Most sessions hold a handful of
// keys, for which a slice searched linearly is faster than a map and costs
// one allocation instead of a map's several: values keep a slice up to
// smallValues keys and switch to a map beyond. Keys keep the order in
// which they were first set while in the slice. The zero value is empty
// and ready to use.
type values struct {
	list []entry          // the values while m is nil
	m    map[string]value // the values once there are more than smallValues
}

type entry struct {
	key string
	val value
}

// smallValues is the most keys values keep in a slice.
const smallValues = 16

func (vs *values) len() int {
	if vs.m != nil {
		return len(vs.m)
	}
	return len(vs.list)
}

func (vs *values) get(key string) (value, bool) {
	if vs.m != nil {
		v, ok := vs.m[key]
		return v, ok
	}
	for i := range vs.list {
		if vs.list[i].key == key {
			return vs.list[i].val, true
		}
	}
	return value{}, false
}

func (vs *values) set(key string, v value) {
	if vs.m != nil {
		vs.m[key] = v
		return
	}
	for i := range vs.list {
		if vs.list[i].key == key {
			vs.list[i].val = v
			return
		}
	}
	if len(vs.list) < smallValues {
		vs.list = append(vs.list, entry{key, v})
		return
	}
	vs.m = make(map[string]value, 2*smallValues)
	for _, e := range vs.list {
		vs.m[e.key] = e.val
	}
	vs.m[key] = v
	vs.list = nil
}

func (vs *values) del(key string) {
	if vs.m != nil {
		delete(vs.m, key)
		return
	}
	for i := range vs.list {
		if vs.list[i].key == key {
			vs.list = append(vs.list[:i], vs.list[i+1:]...)
			return
		}
	}
}

func (vs *values) clear() {
	vs.list, vs.m = vs.list[:0], nil
}

// each calls fn for every key and value, in no particular order.
func (vs *values) each(fn func(key string, v value)) {
	if vs.m != nil {
		for k, v := range vs.m {
			fn(k, v)
		}
		return
	}
	for _, e := range vs.list {
		fn(e.key, e.val)
	}
}
