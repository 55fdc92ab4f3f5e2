"""A real SMTP sink for the notifier's email tests (Python stdlib only): a
threaded SMTP server on 127.0.0.1 that speaks enough of RFC 5321 for
libcurl (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT), keeps every
message it accepts, and can be told to answer RCPT with a given code
(450: transient, 550: permanent) to exercise the notifier's classification.

    smtp = SmtpSink().start()
    smtp.rcpt_code = 550          # refuse recipients for good
    smtp.messages -> [(mail_from, [rcpt...], data_bytes), ...]
"""
import socketserver
import threading


class _Handler(socketserver.StreamRequestHandler):
    def reply(self, line):
        self.wfile.write((line + "\r\n").encode())
        self.wfile.flush()

    def handle(self):
        sink = self.server.sink
        self.reply("220 localhost warden test SMTP sink")
        mail_from, rcpts = None, []
        while True:
            raw = self.rfile.readline(4096)
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            cmd = line[:4].upper()
            if cmd == "EHLO":
                self.wfile.write(b"250-localhost\r\n250-8BITMIME\r\n250 SIZE 10485760\r\n")
                self.wfile.flush()
            elif cmd == "HELO":
                self.reply("250 localhost")
            elif cmd == "MAIL":
                mail_from, rcpts = line[10:].strip(), []
                self.reply("250 OK")
            elif cmd == "RCPT":
                code = sink.rcpt_code
                if code == 250:
                    rcpts.append(line[8:].strip())
                    self.reply("250 OK")
                else:
                    sink.refused += 1
                    self.reply("%d recipient refused (test)" % code)
            elif cmd == "DATA":
                self.reply("354 end with <CRLF>.<CRLF>")
                data = b""
                while True:
                    chunk = self.rfile.readline(1 << 20)
                    if not chunk or chunk == b".\r\n":
                        break
                    if chunk.startswith(b".."):
                        chunk = chunk[1:]
                    data += chunk
                with sink.lock:
                    sink.messages.append((mail_from, rcpts, data))
                self.reply("250 OK queued")
            elif cmd == "RSET":
                mail_from, rcpts = None, []
                self.reply("250 OK")
            elif cmd == "NOOP":
                self.reply("250 OK")
            elif cmd == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 not implemented")


class SmtpSink:
    def __init__(self):
        self.srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Handler)
        self.srv.daemon_threads = True
        self.srv.sink = self
        self.port = self.srv.server_address[1]
        self.rcpt_code = 250
        self.refused = 0
        self.messages = []
        self.lock = threading.Lock()

    def start(self):
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()
