// Java's own HTTP client (java.net.http.HttpClient) as a proxy client, the way a Java agent
// talks to its backend: TLS + HTTP/2 inside a CONNECT tunnel through a plain-HTTP proxy.
// Run with the JDK's single-file source launcher (no build step):
//
//   java ProxyClient.java CA.pem REQUEST...
//
// REQUEST is `LABEL,PROXYHOST:PORT,URL` or `LABEL,PROXYHOST:PORT,URL,USER,PASSWORD`; each is
// one GET with its own HttpClient, so each has its own proxy and credentials. One line per
// request on stdout:
//
//   LABEL status=200 version=HTTP_2 bytes=N body=TEXT      (TEXT with \n, \r and \\ escaped)
//   LABEL error=CLASS: MESSAGE <- CLASS: MESSAGE ...         (the exception and its causes)
//
// The CA is read from PEM here (no keytool, no keystore file). Java sends Basic credentials
// to a proxy on CONNECT only when `jdk.http.auth.tunneling.disabledSchemes` is empty.

import java.io.FileInputStream;
import java.io.InputStream;
import java.net.Authenticator;
import java.net.InetSocketAddress;
import java.net.PasswordAuthentication;
import java.net.ProxySelector;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.time.Duration;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

public class ProxyClient {
    public static void main(String[] args) throws Exception {
        SSLContext tls = trusting(args[0]);
        for (int i = 1; i < args.length; i++) {
            String[] spec = args[i].split(",", 5);
            System.out.println(spec[0] + " " + fetch(tls, spec));
            System.out.flush();
        }
    }

    /** An SSLContext that trusts only the CA certificate(s) in the PEM file. */
    static SSLContext trusting(String pemPath) throws Exception {
        KeyStore roots = KeyStore.getInstance(KeyStore.getDefaultType());
        roots.load(null, null);
        try (InputStream pem = new FileInputStream(pemPath)) {
            int n = 0;
            for (Certificate cert : CertificateFactory.getInstance("X.509").generateCertificates(pem)) {
                roots.setCertificateEntry("ca" + n++, cert);
            }
        }
        TrustManagerFactory trust = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        trust.init(roots);
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(null, trust.getTrustManagers(), null);
        return context;
    }

    static String fetch(SSLContext tls, String[] spec) {
        String[] proxy = spec[1].split(":");
        HttpClient.Builder builder = HttpClient.newBuilder()
            .version(HttpClient.Version.HTTP_2)
            .sslContext(tls)
            .connectTimeout(Duration.ofSeconds(10))
            .proxy(ProxySelector.of(new InetSocketAddress(proxy[0], Integer.parseInt(proxy[1]))));
        if (spec.length == 5) {
            String user = spec[3];
            char[] password = spec[4].toCharArray();
            builder.authenticator(new Authenticator() {
                @Override
                protected PasswordAuthentication getPasswordAuthentication() {
                    // Offer the credentials once: a refused password is not sent again.
                    if (getRequestorType() != RequestorType.PROXY || asked) {
                        return null;
                    }
                    asked = true;
                    return new PasswordAuthentication(user, password);
                }
                private boolean asked;
            });
        }
        HttpRequest request = HttpRequest.newBuilder(URI.create(spec[2]))
            .timeout(Duration.ofSeconds(15))
            .GET()
            .build();
        try {
            HttpResponse<byte[]> response = builder.build().send(request, HttpResponse.BodyHandlers.ofByteArray());
            byte[] body = response.body();
            return "status=" + response.statusCode() + " version=" + response.version()
                + " bytes=" + body.length + " body=" + escape(new String(body, StandardCharsets.UTF_8));
        } catch (Exception e) {
            StringBuilder out = new StringBuilder("error=");
            for (Throwable t = e; t != null; t = t.getCause()) {
                if (t != e) {
                    out.append(" <- ");
                }
                out.append(t.getClass().getName()).append(": ").append(escape(String.valueOf(t.getMessage())));
            }
            return out.toString();
        }
    }

    static String escape(String text) {
        return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r");
    }
}
