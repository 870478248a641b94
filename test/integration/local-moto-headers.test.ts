/**
 * local/moto_shim.py reads a request's header block itself when every line is a plain
 * `Name: value` line, instead of handing it to the email package's feed parser
 * (docs/local-aws.md, "Events to a queue, and request headers"). The message it builds
 * must be the feed parser's, field for field, for every block, and any block it does not
 * take must go to the feed parser unchanged. This runs the shim's parser and http.client's own over
 * seeded random header blocks (plain lines, folded lines, bytes past ASCII, bare CRs,
 * NULs, missing names, `From ` lines, no blank line at the end, too many headers, a line
 * too long, SDK-like blocks) in moto's Python and compares the messages (class, fields,
 * payload, every attribute, the kinds of defects) or the errors, and what is left unread
 * in the stream. The shim's request handler also skips moto's second and third walk of the
 * headers when no header name has an underscore (moto keeps such names' spelling for S3
 * metadata): for each parsed block, with and without underscored S3 metadata names, its
 * WSGI environ must be the one moto's handler makes.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const projectRoot = join(import.meta.dirname, '..', '..');
const python = join(projectRoot, '.venv', 'bin', 'python');

const CHECK = String.raw`
import io, json, random, sys
sys.path.insert(0, sys.argv[1])
import email.parser, http.client
import moto_shim

assert http.client.parse_headers is moto_shim._parse_headers, "the shim did not install its parser"
reference = moto_shim._original_parse_headers
fed = [0]
class CountingParser(email.parser.Parser):
    def __init__(self, *args, **kwargs):
        fed[0] += 1
        super().__init__(*args, **kwargs)

rng = random.Random(int(sys.argv[2]))
PIECES = [b"a", b"Z", b"-", b":", b" ", b"\t", b"\r", b"\n", b"\r\n", b"\xe9", b"\x00", b"7", b"(",
          b"From ", b"=", b"\x7f", b";", b"_"]
SDK = (b"host: 127.0.0.1:4566\r\naccept-encoding: identity\r\ncontent-type: application/x-amz-json-1.0\r\n"
       b"x-amz-target: DynamoDB_20120810.GetItem\r\nx-amz-user-agent: aws-sdk-js/3.0.0\r\n"
       b"user-agent: aws-sdk-js/3.0.0 ua/2.1 os/linux lang/js md/nodejs#24.0.0\r\n"
       b"amz-sdk-invocation-id: 9f0c5b7e-1f0a-4e36-9c1a-0a4b1c2d3e4f\r\namz-sdk-request: attempt=1; max=3\r\n"
       b"x-amz-date: 20261205T083000Z\r\nx-amz-content-sha256: abc\r\n"
       b"authorization: AWS4-HMAC-SHA256 Credential=test/20261205/us-east-1/dynamodb/aws4_request, "
       b"SignedHeaders=host;x-amz-date, Signature=0123\r\ncontent-length: 42\r\n")

def plain_line():
    name = bytes(rng.choice(b"abcXY-_0") for _ in range(rng.randint(1, 6)))
    value = b"".join(rng.choice(PIECES[:13]) for _ in range(rng.randint(0, 6)))
    return name + b":" + b" " * rng.randint(0, 2) + value + rng.choice([b"\r\n", b"\n"])

def block():
    kind = rng.random()
    if kind < 0.05:
        return SDK + b"\r\n" + b"body"
    if kind < 0.07:
        return b"".join(plain_line() for _ in range(101)) + b"\r\n"
    if kind < 0.09:
        return b"X-Long: " + b"v" * 70000 + b"\r\n\r\n"
    lines = []
    for _ in range(rng.randint(0, 6)):
        if rng.random() < 0.6:
            lines.append(plain_line())
        else:
            lines.append(b"".join(rng.choice(PIECES) for _ in range(rng.randint(0, 10))) + rng.choice([b"\r\n", b"\n", b""]))
    return b"".join(lines) + rng.choice([b"\r\n", b"\n", b"", b"\r\nrest"])

def outcome(parse, data):
    stream = io.BytesIO(data)
    try:
        message = parse(stream)
    except Exception as error:
        return ["error", type(error).__name__, str(error), stream.read()]
    attributes = {key: value for key, value in vars(message).items() if key != "defects"}
    return ["message", type(message).__name__, repr(attributes), [type(d).__name__ for d in message.defects], stream.read()]

class Server:
    ssl_context = None
    multithread = True
    multiprocess = False
    server_address = ("127.0.0.1", 4566)

def environ(handler_class, data):
    """What a request handler of this class makes of the request's headers for WSGI."""
    handler = handler_class.__new__(handler_class)
    handler.headers = reference(io.BytesIO(data))
    handler.server, handler.client_address = Server, ("127.0.0.1", 40000)
    handler.rfile, handler.connection = SHARED_INPUT, SHARED_SOCKET
    handler.command, handler.path, handler.request_version = "POST", "/?a=b", "HTTP/1.1"
    return handler.make_environ()

SHARED_INPUT, SHARED_SOCKET = io.BytesIO(b""), object()
blocks = int(sys.argv[3])
differences = []
environs = 0
for _ in range(blocks):
    data = block()
    if rng.random() < 0.1:  # S3 metadata whose name moto keeps, alone or beside its dashed twin
        data = rng.choice([b"x-amz-meta-my_key: v\r\n", b"x-amz-meta-my_key: v\r\nX-Amz-Meta-My-Key: w\r\n"]) + data
    expected = outcome(reference, data)
    email.parser.Parser = CountingParser
    try:
        actual = outcome(moto_shim._parse_headers, data)
    finally:
        email.parser.Parser = CountingParser.__mro__[1]
    if actual != expected and len(differences) < 5:
        differences.append({"block": repr(data), "expected": repr(expected), "actual": repr(actual)})
    if expected[0] == "message":
        environs += 1
        want = environ(moto_shim.werkzeug_app.MotoRequestHandler, data)
        got = environ(moto_shim._KeepAliveRequestHandler, data)
        if want != got and len(differences) < 5:
            differences.append({"block": repr(data), "expected environ": repr(want), "actual environ": repr(got)})
print(json.dumps({"blocks": blocks, "environs": environs, "fedToEmailParser": fed[0], "differences": differences}))
`;

async function compare(seed: number, blocks: number) {
  const { stdout } = await promisify(execFile)(
    python,
    ['-c', CHECK, join(projectRoot, 'local'), String(seed), String(blocks)],
    {
      cwd: projectRoot,
      timeout: 120_000,
      maxBuffer: 16 * 1024 * 1024,
    },
  );
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as {
    blocks: number;
    environs: number;
    fedToEmailParser: number;
    differences: unknown[];
  };
}

describe('the shim reads request headers as http.client does', () => {
  it('gives the same message, error, unread rest and WSGI environ for every header block', async () => {
    const result = await compare(20_261_205, 20_000);
    expect(result.differences).toEqual([]);
    expect(result.blocks).toBe(20_000);
    // Both paths were taken: some blocks the shim read itself, some it handed on.
    expect(result.fedToEmailParser).toBeGreaterThan(2_000);
    expect(result.fedToEmailParser).toBeLessThan(18_000);
    // Each parsed block's WSGI environ, as moto's request handler makes it.
    expect(result.environs).toBeGreaterThan(10_000);
  });
});
