// Drives the sidecar with Java's built-in java.net.http.HttpClient (JDK 11+), left at its
// defaults: HTTP/2 preferred, so each new connection to an http:// URL offers an h2c upgrade the
// sidecar must ignore. Same step protocol as http_steps.mjs, one step per stdin line:
//   name \t method \t target \t base64("Header: value\n"...) \t base64(body)
// answers on stdout: name \t status \t content-encoding \t base64(body).
// HttpClient has no unix-socket transport, so only --url is supported.
//
// usage: java GateHttpClient.java --url http://127.0.0.1:PORT   (JDK 11+ runs the source file)

import java.io.BufferedReader;
import java.io.ByteArrayInputStream;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Base64;
import java.util.HashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.zip.GZIPInputStream;

public class GateHttpClient {
    private static final Pattern ID = Pattern.compile("\"id\"\\s*:\\s*\"?([^\",}\\s]+)");
    private static final Pattern PLACEHOLDER = Pattern.compile("\\{id:([^}]+)\\}");
    private static final Map<String, String> IDS = new HashMap<>();

    private static String withIds(String text) {
        Matcher m = PLACEHOLDER.matcher(text);
        StringBuilder out = new StringBuilder();
        while (m.find()) {
            String id = IDS.get(m.group(1));
            if (id == null) {
                throw new IllegalStateException("no id from step " + m.group(1));
            }
            m.appendReplacement(out, Matcher.quoteReplacement(id));
        }
        m.appendTail(out);
        return out.toString();
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 2 || !args[0].equals("--url")) {
            System.err.println("usage: java GateHttpClient.java --url BASE");
            System.exit(2);
        }
        String base = args[1];
        HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
        Base64.Decoder dec = Base64.getDecoder();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isBlank()) {
                continue;
            }
            String[] f = line.split("\t", -1);
            String name = f[0];
            String method = f[1];
            String target = withIds(f[2]);
            byte[] body = dec.decode(f.length > 4 ? f[4] : "");
            HttpRequest.Builder req = HttpRequest.newBuilder(URI.create(base + target))
                    .timeout(Duration.ofSeconds(30));
            boolean compressed = false;
            for (String h : new String(dec.decode(f[3]), StandardCharsets.UTF_8).split("\n")) {
                int at = h.indexOf(':');
                if (at > 0) {
                    String hname = h.substring(0, at).trim();
                    compressed |= hname.equalsIgnoreCase("Content-Encoding");
                    req.header(hname, h.substring(at + 1).trim());
                }
            }
            if (!compressed) {
                body = withIds(new String(body, StandardCharsets.UTF_8)).getBytes(StandardCharsets.UTF_8);
            }
            req.method(method, body.length == 0
                    ? HttpRequest.BodyPublishers.noBody()
                    : HttpRequest.BodyPublishers.ofByteArray(body));
            HttpResponse<byte[]> resp = client.send(req.build(), HttpResponse.BodyHandlers.ofByteArray());
            String encoding = resp.headers().firstValue("Content-Encoding").orElse("");
            byte[] data = resp.body();
            if (encoding.equalsIgnoreCase("gzip")) {
                data = new GZIPInputStream(new ByteArrayInputStream(data)).readAllBytes();
            }
            Matcher m = ID.matcher(new String(data, StandardCharsets.UTF_8));
            if (m.find()) {
                IDS.put(name, m.group(1));
            }
            System.out.println(String.join("\t", name, Integer.toString(resp.statusCode()), encoding,
                    Base64.getEncoder().encodeToString(data)));
        }
    }
}
