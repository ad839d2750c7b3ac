// Signs and verifies test vector "report" of docs/operator-signing.md with the JDK alone
// (Java 15 or later): java SignVector.java prints the vector's X-Mynahil-Signature.
import java.nio.charset.StandardCharsets;
import java.security.KeyFactory;
import java.security.MessageDigest;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.Signature;
import java.security.spec.PKCS8EncodedKeySpec;
import java.security.spec.X509EncodedKeySpec;
import java.util.Base64;
import java.util.HexFormat;

public class SignVector {
    static final String PKCS8_PREFIX = "302e020100300506032b657004220420";
    static final String SPKI_PREFIX = "302a300506032b6570032100";

    static byte[] stringToSign(String method, String target, String timestamp, String nonce,
                               byte[] body) throws Exception {
        byte[] digest = MessageDigest.getInstance("SHA-256").digest(body);
        String text = method.toUpperCase() + "\n" + target + "\n" + timestamp + "\n" + nonce
                + "\n" + HexFormat.of().formatHex(digest);
        return text.getBytes(StandardCharsets.UTF_8);
    }

    public static void main(String[] args) throws Exception {
        // Vector "report" of docs/operator-signing-vectors.json (a test checks these constants)
        String seedHex = "788c2f55220a437f09d7a1216db6a13b156bf7e6a1b29202adbda4344c3969d5";
        String publicB64 = "AmhK0kK/PRtL8jhpORtOs7TGtuVtkmNZL2+efxYwT8Q=";
        String body = "{\"transactions\":[{\"idempotency_key\":\"k-0001\",\"transaction_id\":\"t-0001\",\"service_id\":\"svc-1\",\"account_id\":\"acct-42\",\"kind\":\"charge\",\"amount\":5000,\"occurred_at\":\"2026-01-05T09:30:00+09:00\"}]}";
        byte[] message = stringToSign("POST", "/v1/operators/op-example/transactions",
                "1767225600", "nonce-report-0001", body.getBytes(StandardCharsets.UTF_8));

        KeyFactory keys = KeyFactory.getInstance("Ed25519");
        PrivateKey privateKey = keys.generatePrivate(
                new PKCS8EncodedKeySpec(HexFormat.of().parseHex(PKCS8_PREFIX + seedHex)));
        Signature signer = Signature.getInstance("Ed25519");
        signer.initSign(privateKey);
        signer.update(message);
        String signature = Base64.getEncoder().encodeToString(signer.sign());
        System.out.println("X-Mynahil-Signature: " + signature);

        byte[] rawPublic = Base64.getDecoder().decode(publicB64);
        PublicKey publicKey = keys.generatePublic(new X509EncodedKeySpec(
                HexFormat.of().parseHex(SPKI_PREFIX + HexFormat.of().formatHex(rawPublic))));
        Signature verifier = Signature.getInstance("Ed25519");
        verifier.initVerify(publicKey);
        verifier.update(message);
        System.out.println("verifies: " + verifier.verify(Base64.getDecoder().decode(signature)));
    }
}
