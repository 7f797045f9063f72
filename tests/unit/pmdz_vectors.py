# pmdz_vectors.py - writes pmdz_vectors.h (run once; the output is committed):
# messages compressed by Python's zlib as a permessage-deflate peer would
# (raw deflate, Z_SYNC_FLUSH, the 00 00 ff ff tail stripped), with and
# without context takeover, for test_pmdz.c.
import zlib
def c_arr(name, b):
    s = ', '.join('0x%02x' % x for x in b)
    out = 'static const uint8_t %s[] = {' % name
    lines=[]; cur='   '
    for tok in s.split(', '):
        if len(cur) + len(tok) + 2 > 96:
            lines.append(cur.rstrip()); cur='   '
        cur += ' ' + tok + ','
    lines.append(cur.rstrip(','))
    return out + '\n' + '\n'.join(lines) + '\n};'
json = b'{"id":12345,"type":"update","user":{"name":"Ada Lovelace","roles":["admin","editor"]},"items":[{"sku":"A-1","qty":3},{"sku":"B-22","qty":1},{"sku":"A-1","qty":3}],"note":"caf\xc3\xa9 \xe2\x82\xac"}'
msgs = [json, json.replace(b'12345', b'12346'), json.replace(b'update', b'delete')]
def comp(wbits, msgs, takeover):
    out=[]; c = zlib.compressobj(9, zlib.DEFLATED, wbits, 9)
    for m in msgs:
        if not takeover: c = zlib.compressobj(9, zlib.DEFLATED, wbits, 9)
        d = c.compress(m) + c.flush(zlib.Z_SYNC_FLUSH)
        assert d.endswith(b'\x00\x00\xff\xff'); out.append(d[:-4])
    return out
for name, wbits, tk in (('py15_take', -15, True), ('py15_fresh', -15, False), ('py9_take', -9, True)):
    for i, d in enumerate(comp(wbits, msgs, tk)):
        print(c_arr('%s%d' % (name, i), d))
print(c_arr('py_json', json))
