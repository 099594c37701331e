"""Numba kernels of the B-mode simulator, in beam coordinates (line l, range sample k).

1. ``sample_medium``: labels along every scan line from a label volume (any affine),
   impedance (also ± an elevation step, for the out-of-plane tilt of interfaces), the
   injectate fluid fraction and the
   complex scatterer amplitude fixed in patient space (hashed lattice, complex Gaussian).
2. ``propagate``: marches each line from the face: two-way attenuation α·f, specular
   reflection R = ((Z2−Z1)/(Z2+Z1))² with an angle law, transmission (1−R) per interface,
   diffuse backscatter, reverberation (A-lines) under air. Writes the complex source.
3. ``psf_axial`` / ``psf_lateral``: separable point-spread function in complex baseband
   (Gaussian pulse envelope axially; depth-dependent Gaussian beam laterally).
4. ``detect``: envelope |IQ| (Rayleigh for fully developed speckle), TGC and gain, log
   compression to 8 bits.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

FLAG_BONE = 1
FLAG_AIR = 2
FLAG_VESSEL = 4
FLAG_FLUID = 8

Z_WATER = 1.48  # MRayl
ALPHA_WATER = 0.002
BS_WATER = 1e-3  # amplitude (-60 dB)


@njit(cache=True, inline="always")
def _mix64(x):
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@njit(cache=True, inline="always")
def _gauss2(h):
    """Two independent standard normal numbers from a 64-bit hash (Box–Muller)."""
    a = _mix64(h)
    b = _mix64(a ^ np.uint64(0x9E3779B97F4A7C15))
    u1 = ((a >> np.uint64(11)) + np.uint64(1)) * (1.0 / 9007199254740993.0)
    u2 = (b >> np.uint64(11)) * (1.0 / 9007199254740992.0)
    r = math.sqrt(-2.0 * math.log(u1))
    return r * math.cos(6.283185307179586 * u2), r * math.sin(6.283185307179586 * u2)


@njit(cache=True, inline="always")
def _lattice_hash(i, j, k, seed):
    h = np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
    h = _mix64(h ^ np.uint64(np.int64(i) & 0x1FFFFF))
    h = _mix64(h ^ (np.uint64(np.int64(j) & 0x1FFFFF) << np.uint64(21)))
    h = _mix64(h ^ (np.uint64(np.int64(k) & 0x1FFFFF) << np.uint64(42)))
    return h


@njit(cache=True, inline="always")
def _label_at(vol, M, x, y, z):
    fi = M[0, 0] * x + M[0, 1] * y + M[0, 2] * z + M[0, 3]
    fj = M[1, 0] * x + M[1, 1] * y + M[1, 2] * z + M[1, 3]
    fk = M[2, 0] * x + M[2, 1] * y + M[2, 2] * z + M[2, 3]
    i = int(math.floor(fi + 0.5))
    j = int(math.floor(fj + 0.5))
    k = int(math.floor(fk + 0.5))
    if i < 0 or j < 0 or k < 0 or i >= vol.shape[0] or j >= vol.shape[1] or k >= vol.shape[2]:
        return -1
    return vol[i, j, k]


@njit(cache=True, parallel=True, fastmath=True)
def sample_medium(vol, M, origins, dirs, elev, r_mm, lut_z, out_label, out_z, out_zp, out_zm,
                  scat, lattice_mm, seed, fluid, Mf, out_fluid, elev_step_mm):
    """Sample the medium along every line. origins/dirs (L, 3) patient mm; elev (3,) unit
    elevation vector; labels outside the volume read as air (0). ``fluid`` is an optional
    fraction volume (shape (1,1,1) when absent) with its PatientToVoxel ``Mf``."""
    L = origins.shape[0]
    N = r_mm.shape[0]
    inv = 1.0 / lattice_mm
    has_fluid = fluid.shape[0] > 1
    for l in prange(L):
        for k in range(N):
            x = origins[l, 0] + r_mm[k] * dirs[l, 0]
            y = origins[l, 1] + r_mm[k] * dirs[l, 1]
            z = origins[l, 2] + r_mm[k] * dirs[l, 2]
            lab = _label_at(vol, M, x, y, z)
            if lab < 0:
                lab = 0
            out_label[l, k] = lab
            out_z[l, k] = lut_z[lab]
            a = _label_at(vol, M, x + elev_step_mm * elev[0], y + elev_step_mm * elev[1],
                          z + elev_step_mm * elev[2])
            b = _label_at(vol, M, x - elev_step_mm * elev[0], y - elev_step_mm * elev[1],
                          z - elev_step_mm * elev[2])
            out_zp[l, k] = lut_z[a if a >= 0 else 0]
            out_zm[l, k] = lut_z[b if b >= 0 else 0]
            g1, g2 = _gauss2(_lattice_hash(math.floor(x * inv), math.floor(y * inv),
                                           math.floor(z * inv), seed))
            scat[l, k] = complex(g1 * 0.7071067811865476, g2 * 0.7071067811865476)
            if has_fluid:
                f = _label_at(fluid, Mf, x, y, z)
                out_fluid[l, k] = 0.0 if f < 0 else f
            else:
                out_fluid[l, k] = 0.0


@njit(cache=True, parallel=True, fastmath=True)
def propagate(label, zimp, zsmooth, gel, fluid, scat, flags, lut_alpha, lut_bs, f_mhz, dr_mm,
              line_dx_mm, spec_gain, theta0_rad, lambert, r_fascia, out_src, out_att):
    """March every line: write the complex source (diffuse + specular, both multiplied by
    the two-way attenuation and transmission so far) and the two-way amplitude factor."""
    L, N = label.shape
    np_per_cm = math.log(10.0) / 20.0  # dB -> neper (amplitude)
    for l in prange(L):
        att_db = 0.0
        trans = 1.0
        air_k = -1
        air_amp = 0.0
        z_prev = zimp[l, 0]
        lab_prev = label[l, 0]
        for k in range(N):
            lab = label[l, k]
            fl = flags[lab]
            f = fluid[l, k]
            if (fl & (FLAG_BONE | FLAG_VESSEL | FLAG_AIR)) != 0:
                f = 0.0
            zz = zimp[l, k] * (1.0 - f) + Z_WATER * f
            al = lut_alpha[lab] * (1.0 - f) + ALPHA_WATER * f
            bs = lut_bs[lab] * (1.0 - f) + BS_WATER * f
            amp = math.exp(-att_db * np_per_cm) * trans
            out_att[l, k] = amp
            src = scat[l, k] * (bs * amp)
            if k > 0 and (zz != z_prev or lab != lab_prev):
                rr = (zz - z_prev) / (zz + z_prev)
                R = rr * rr
                # a boundary between two structures is a fascial sheath / wall: at least
                # r_fascia (not in front of the skin)
                if lab != lab_prev and (flags[lab] & FLAG_AIR) == 0 and lab_prev != 255 \
                        and lab != 255 and R < r_fascia:
                    R = r_fascia
                # interface normal from the smoothed impedance gradient (axial, lateral,
                # elevation): incidence angle against the beam
                k0 = k - 1 if k > 1 else 1
                k1 = k + 1 if k < N - 1 else N - 1
                ga = (zsmooth[l, k1] - zsmooth[l, k0]) / ((k1 - k0) * dr_mm)
                l0 = l - 1 if l > 0 else 0
                l1 = l + 1 if l < L - 1 else L - 1
                gl = 0.0
                if l1 > l0:
                    gl = (zsmooth[l1, k] - zsmooth[l0, k]) / ((l1 - l0) * line_dx_mm[k])
                ge = gel[l, k]
                gn = math.sqrt(ga * ga + gl * gl + ge * ge)
                c = 1.0 if gn <= 0.0 else abs(ga) / gn
                th = math.acos(min(1.0, c))
                lam = lambert if (fl & FLAG_BONE) != 0 else 0.1 * lambert
                ang = math.exp(-(th / theta0_rad) ** 2) + lam * c
                src += math.sqrt(spec_gain[k] * R * ang) * amp
                trans *= 1.0 - R
                if (fl & FLAG_AIR) != 0 and R > 0.5 and air_k < 0:
                    air_k = k
                    air_amp = math.sqrt(spec_gain[k] * R * ang) * amp
            out_src[l, k] = src
            z_prev = zz
            lab_prev = lab
            att_db += 2.0 * al * f_mhz * dr_mm * 0.1
        # reverberation (A-lines) between the face and a strong air interface: echoes at
        # integer multiples of its depth, each bounce losing the face and interface
        # reflectivity and the extra round-trip attenuation through the soft tissue above.
        if air_k > 0:
            per_bounce = 0.35 * math.exp(-2.0 * lut_alpha[label[l, air_k // 2]] * f_mhz
                                         * air_k * dr_mm * 0.1 * np_per_cm)
            a = air_amp
            for n in range(2, 6):
                a *= per_bounce
                kk = n * air_k
                if kk >= N:
                    break
                out_src[l, kk] += a


@njit(cache=True, parallel=True, fastmath=True)
def psf_axial(src, kern, out):
    """Convolve every line with the axial pulse envelope ``kern`` (odd length)."""
    L, N = src.shape
    h = kern.shape[0] // 2
    for l in prange(L):
        for k in range(N):
            acc = 0j
            for t in range(-h, h + 1):
                kk = k + t
                if 0 <= kk < N:
                    acc += src[l, kk] * kern[t + h]
            out[l, k] = acc


@njit(cache=True, parallel=True, fastmath=True)
def psf_lateral(src, kerns, half, out):
    """Convolve across lines with a depth-dependent kernel: ``kerns`` (N, 2H+1), ``half``
    (N,) the used half width per range sample."""
    L, N = src.shape
    H = kerns.shape[1] // 2
    for l in prange(L):
        for k in range(N):
            acc = 0j
            hk = half[k]
            for t in range(-hk, hk + 1):
                ll = l + t
                if 0 <= ll < L:
                    acc += src[ll, k] * kerns[k, t + H]
            out[l, k] = acc


@njit(cache=True, parallel=True, fastmath=True)
def psf_lateral_aberrated(src, kerns, half, halo_pow, halo_half, strehl, seed, out):
    """Lateral PSF with a phase aberrator: the coherent main lobe keeps sqrt(S) of the
    amplitude; the scattered part (1−S) of the energy arrives with random phase from a
    wide halo (clutter): its intensity is the halo-weighted local echo intensity, its
    phase a complex Gaussian fixed by ``seed``. ``halo_pow``: (N, 2H+1) halo |h|² (sum 1)."""
    L, N = src.shape
    H = kerns.shape[1] // 2
    Hh = halo_pow.shape[1] // 2
    for l in prange(L):
        for k in range(N):
            acc = 0j
            hk = half[k]
            for t in range(-hk, hk + 1):
                ll = l + t
                if 0 <= ll < L:
                    acc += src[ll, k] * kerns[k, t + H]
            sk = strehl[k]
            if sk < 0.999:
                pw = 0.0
                hh = halo_half[k]
                for t in range(-hh, hh + 1):
                    ll = l + t
                    if 0 <= ll < L:
                        v = src[ll, k]
                        pw += (v.real * v.real + v.imag * v.imag) * halo_pow[k, t + Hh]
                g1, g2 = _gauss2(_lattice_hash(l, k, 77, seed ^ 0x2545F491))
                a = math.sqrt((1.0 - sk) * pw * 0.5)
                out[l, k] = acc * math.sqrt(sk) + complex(a * g1, a * g2)
            else:
                out[l, k] = acc


@njit(cache=True, parallel=True, fastmath=True)
def add_noise(iq, sigma, seed, frame):
    """Add complex white Gaussian receiver noise (std ``sigma`` per quadrature·√2)."""
    L, N = iq.shape
    for l in prange(L):
        for k in range(N):
            g1, g2 = _gauss2(_lattice_hash(l, k, frame, seed ^ 0x5DEECE66D))
            iq[l, k] += complex(g1 * sigma * 0.7071067811865476, g2 * sigma * 0.7071067811865476)


@njit(cache=True, parallel=True, fastmath=True)
def detect(iq, gain_lin, env, img8, top_db, dr_db):
    """Envelope |IQ| × gain (per range sample), and its log compression to uint8 over the
    window [top_db − dr_db, top_db] (dB re muscle speckle at the face)."""
    L, N = iq.shape
    scale = 255.0 / dr_db
    lo = top_db - dr_db
    for l in prange(L):
        for k in range(N):
            v = iq[l, k]
            e = math.sqrt(v.real * v.real + v.imag * v.imag) * gain_lin[k]
            env[l, k] = e
            d = 20.0 * math.log10(e + 1e-12)
            p = (d - lo) * scale
            if p < 0.0:
                p = 0.0
            elif p > 255.0:
                p = 255.0
            img8[l, k] = p
