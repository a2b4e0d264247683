#!/usr/bin/env python3
"""Convert strongSwan's C test-vector tables into the JSON files next to this script.

strongSwan (src/libstrongswan/plugins/test_vectors/test_vectors/*.c) transcribes the
published vectors (RFC 2202, 3566, 3602, 3686, 4231/4868, 4434, 4493/4494, 4615,
7634, McGrew & Viega GCM, Linux testmgr CCM) as C structs, each with a comment
naming its origin. Converting them mechanically avoids hand-copying hex. Every JSON
vector keeps that comment as its "source"; vectors strongSwan calls self-made are
marked "independent": false.

usage: import_strongswan.py <dir with the .c files> <strongSwan commit>
"""
import json, os, re, sys

src_dir, commit = sys.argv[1], sys.argv[2]
out_dir = os.path.dirname(os.path.abspath(__file__))

def c_string(tokens):
    out = bytearray()
    for tok in tokens:
        i = 0
        while i < len(tok):
            c = tok[i]
            if c == '\\':
                n = tok[i + 1]
                if n == 'x':
                    out.append(int(tok[i + 2:i + 4], 16))
                    if i + 4 < len(tok) and tok[i + 4] in '0123456789abcdefABCDEF':
                        raise ValueError('ambiguous C hex escape in ' + tok)
                    i += 4
                    continue
                out.append({'n': 10, 't': 9, 'r': 13, '0': 0, '\\': 92, '"': 34}[n])
                i += 2
                continue
            out.append(ord(c))
            i += 1
    return bytes(out)

def parse(path):
    text = open(path).read()
    vectors, comment = [], ''
    pos = 0
    pat = re.compile(r'/\*\*(.*?)\*/|(\w+)_test_vector_t\s+(\w+)\s*=\s*\{(.*?)\};', re.S)
    for m in pat.finditer(text):
        if m.group(1) is not None:
            comment = ' '.join(l.strip(' *') for l in m.group(1).splitlines()).strip()
            continue
        kind, name, body = m.group(2), m.group(3), m.group(4)
        v = {'name': name, 'kind': kind, 'source': comment,
             'independent': 'self made' not in comment.lower() and 'defined by ourself' not in comment.lower()
                            and 'self-made' not in comment.lower()}
        for fm in re.finditer(r'\.([\w.]+)\s*=\s*((?:"(?:[^"\\]|\\.)*"\s*)+|chunk_from_chars\([^)]*\)|[^,]+)', body):
            field, val = fm.group(1), fm.group(2).strip()
            if val.startswith('chunk_from_chars('):
                v[field] = bytes(int(x, 16) for x in re.findall(r'0x([0-9a-fA-F]{2})', val))
            elif val.startswith('"'):
                v[field] = c_string(re.findall(r'"((?:[^"\\]|\\.)*)"', val))
            else:
                v[field] = int(val) if val.isdigit() else val
        # The struct's length fields say how much of each literal is used.
        if kind in ('prf', 'signer') and 'len' in v:
            for f in ('seed', 'data'):
                if f in v:
                    v[f] = v[f][:v['len']]
        if kind == 'crypter':
            v['plain'] = v.get('plain', b'')[:v['len']]
            v['cipher'] = v.get('cipher', b'')[:v['len']]
        if kind == 'aead':
            v['plain'] = v.get('plain', b'')[:v['len']]
            v['adata'] = v.get('adata', b'')[:v.get('alen', 0)]
        for k, x in list(v.items()):
            if isinstance(x, bytes):
                v[k] = x.hex()
        vectors.append(v)
    return vectors

for f in sorted(os.listdir(src_dir)):
    if not f.endswith('.c'):
        continue
    vs = parse(os.path.join(src_dir, f))
    doc = {
        'imported_from': 'https://github.com/strongswan/strongswan/blob/%s/src/libstrongswan/plugins/test_vectors/test_vectors/%s' % (commit, f),
        'note': 'each vector\'s "source" is strongSwan\'s comment naming the original publication',
        'vectors': vs,
    }
    with open(os.path.join(out_dir, 'strongswan_' + f[:-2] + '.json'), 'w') as o:
        json.dump(doc, o, indent=1)
        o.write('\n')
    print(f, len(vs))
