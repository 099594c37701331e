"""Numba kernels of the B-mode simulator, in beam coordinates (line l, range sample k).

1. ``sample_medium``: labels along every scan line from a label volume (any affine),
   impedance (also ± an elevation step, for the out-of-plane tilt of interfaces), the
   injectate fluid fraction and the
   complex scatterer amplitude fixed in patient space (hashed lattice, complex Gaussian),
   summed over a few planes across the elevation beam profile (slice thickness).
2. ``propagate``: marches each line from the face: two-way attenuation α·f, specular
   reflection R = ((Z2−Z1)/(Z2+Z1))² with an angle law, transmission (1−R) per interface,
   bone's loss across the beam (partial-volume shadows, ``us/shadow_field.py``),
   diffuse backscatter, reverberation (A-lines) under air. Writes the complex source.
3. ``body_wall_clutter``: the body wall's aberration (main-lobe fraction, pedestal) and
   reverberation clutter (body_wall.py), added to the source before the PSF.
4. ``psf_axial_noise`` / ``psf_lateral_detect``: separable point-spread function in
   complex baseband (Gaussian pulse envelope axially, receiver noise; depth-dependent
   Gaussian beam laterally), then the envelope |IQ|
   (Rayleigh for fully developed speckle), TGC and gain, log compression to 8 bits.

Random numbers and the scatterers' field: ``us/scatterers.py``; 3 and 4 live in
``us/psf_kernels.py`` (re-exported here).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from needleguide.us.elevation import elevation_planes  # noqa: F401 (re-exported)
from needleguide.us.interface_normal import GRAD_EPS, label_normal
from needleguide.us.label_field import NO_MIX, crossing, crossing_from, label_at
from needleguide.us.psf_kernels import (  # noqa: F401 (re-exported)
    body_wall_clutter,
    psf_axial_noise,
    psf_lateral_detect,
)
from needleguide.us.scatterers import (  # noqa: F401 (re-exported)
    NOISE_STREAM,
    SCATTER_STREAM,
    SCATTER_TABLE_BITS,
    TABLE_BITS,
    gaussian_table,
    line_order,
    line_point,
    plane_reach,
    rescatter,
    scatter_sum,
)
from needleguide.us.tissue_motion import drag_near, near_span

FLAG_BONE = 1
FLAG_AIR = 2
FLAG_VESSEL = 4
FLAG_FLUID = 8

N_REVERB = 4  # soft-tissue interfaces per line taking part in face reverberation
R_FACE = 0.1  # intensity reflectivity of the probe face (lens and matching layers)
Z_WATER = 1.48  # MRayl
ALPHA_WATER = 0.002
BS_WATER = 1e-3  # amplitude (-60 dB)


@njit(cache=True, parallel=True, fastmath=True)
def sample_medium(vol, mixed, M, origins, dirs, elev, r_mm, r_img, lut_z, isfat, ismuscle,
                  out_label, out_z, out_zp, out_zm, scat, table, lattice_mm, seed, fluid, Mf,
                  out_fluid, elev_step_mm, gel_label, z_gel, gel_run, out_fat, band, el_off, el_w,
                  drag, en, c2, reach2, order, out_frac):
    """Sample the medium along every line. origins/dirs (L, 3) patient mm; ``r_mm`` (L, N):
    the range in the undeformed patient of every sample (the soft tissue under the face is
    displaced along the line, us/imager.py ``contact_map``); elev (3,) unit
    elevation vector; labels outside the volume read as air (0); ``mixed``: the label
    lookup (``label_field.label_at``: ``NO_MIX``, the nearest voxel, or the slab's
    ``mixed_blocks``, sub-voxel boundaries). The scatterer amplitude of
    a sample is a complex Gaussian from ``table`` indexed by a hash of its lattice cell in
    patient space (fixed in the patient). Outside-body air in front of the skin (before the
    first run of ``gel_run`` tissue samples) becomes coupling gel. ``out_fat``: cumulative
    fat path (mm). ``fluid``: optional fraction volume ((1,1,1) when absent).

    Elevation beam thickness: the scatterer amplitude is the sum over the planes
    ``el_off[k, j]`` (mm along ``elev``, (N, P)) of the cells there, weighted by the beam's
    elevation amplitude profile ``el_w[k, j]`` (Σ_j w² = 1: the mean power is kept). The
    planes lie on a grid fixed in the patient (:func:`elevation_planes`), so an
    out-of-plane move of the probe keeps the same cells and only changes their weights.
    ``drag``: the needle's tissue displacement (``tissue_motion.drag_params``): the cells
    are looked up where the tissue came from (en, c2, reach2: ``near_setup``'s; ``order``:
    the lines in the threads' order, ``scatterers.line_order``). The field is evaluated
    where the sample is drawn, ``r_img`` (N,) along the line (the needle is a rigid
    object in the probe's frame, drawn there; the tissue it drags is the tissue drawn
    around it, not the tissue at the sample's undeformed range ``r_mm``, which lies up to
    the contact displacement away), and the displacement applied at ``r_mm``.
    ``out_frac`` (L, N) turns on sub-cell coherence (``speckle_subcell``; (1, 1): off): the
    scatterers blended between cells (``scatterers.cell_interp``, 8 cells per plane), and
    ``out_frac`` filled with the fraction of the step from sample k − 1 to k where the
    label changes (``label_field.crossing``; 1 elsewhere), where :func:`propagate`
    places the interface's echo, so that a sub-sample move moves it a little instead of a
    whole sample."""
    L = origins.shape[0]
    N = r_mm.shape[1]
    interp = out_frac.shape[0] == L
    inv = 1.0 / lattice_mm
    mask = table.shape[0] - 1
    has_fluid = fluid.shape[0] > 1
    ex, ey, ez = elev_step_mm * elev[0], elev_step_mm * elev[1], elev_step_mm * elev[2]
    dr = r_mm[0, N - 1] - r_mm[0, N - 2]  # image range step (the deep samples: undeformed)
    # the drag field once per sample (scatterers.scatter_sum, tissue_motion.drag_near): only
    # where it moves an elevation plane (identical cells elsewhere, a fraction of the work)
    ek_max = np.abs(el_off).max()
    for i in prange(L):
        l = order[i]
        run = 0
        first = -1
        fat = 0.0
        n0, n1 = near_span(origins, dirs, l, r_img, ek_max, reach2, drag)
        for k in range(N):
            x, y, z = line_point(origins, dirs, l, r_mm[l, k])
            lab = label_at(vol, mixed, M, x, y, z)
            if lab < 0:
                lab = 0
            out_label[l, k] = lab
            out_z[l, k] = lut_z[lab]
            if isfat[lab]:
                fat += dr  # the path the wave crosses: the deformed (image) step
            out_fat[l, k] = fat
            xi, yi, zi = line_point(origins, dirs, l, r_img[k])  # where it is drawn
            near, s0, r0, de = drag_near(xi, yi, zi, plane_reach(el_off, k), en, c2,
                                         reach2 if n0 <= k < n1 else 0.0, elev, drag)
            scat[l, k] = scatter_sum(x, y, z, k, el_off, el_w, elev, near, s0, r0, de, en,
                                     drag, interp, inv, seed, mask, table, ismuscle[lab])
            if has_fluid:
                f = label_at(fluid, NO_MIX, Mf, x, y, z)
                out_fluid[l, k] = 0.0 if f < 0 else f
            else:
                out_fluid[l, k] = 0.0
            if first < 0:
                if lab != 0:
                    run += 1
                    if run >= gel_run:
                        first = k - run + 1
                else:
                    run = 0
        if first < 0:
            first = N
        for k in range(first):
            if out_label[l, k] == 0:
                out_label[l, k] = gel_label
                out_z[l, k] = z_gel
        if interp:
            out_frac[l, 0] = 1.0
            for k in range(1, N):
                out_frac[l, k] = 1.0
                if out_label[l, k] == out_label[l, k - 1]:
                    continue
                step = r_mm[l, k] - r_mm[l, k - 1]
                if step > 0.0:
                    out_frac[l, k] = (crossing(vol, mixed, M, origins, dirs, l, r_mm[l, k - 1],
                                               r_mm[l, k]) - r_mm[l, k - 1]) / step
        # impedance one elevation step either side, only within ``band`` samples of an
        # interface (the only place where the out-of-plane tilt is used)
        for k in range(N):
            out_zp[l, k] = out_z[l, k]
            out_zm[l, k] = out_z[l, k]
        last = -1
        for k in range(1, N):
            if out_label[l, k] != out_label[l, k - 1]:
                k0 = k - band if k - band > last + 1 else last + 1
                k1 = k + band if k + band < N else N - 1
                for kk in range(k0, k1 + 1):
                    if out_label[l, kk] == gel_label:
                        continue
                    x, y, z = line_point(origins, dirs, l, r_mm[l, kk])
                    a = label_at(vol, mixed, M, x + ex, y + ey, z + ez)
                    b = label_at(vol, mixed, M, x - ex, y - ey, z - ez)
                    out_zp[l, kk] = lut_z[a if a >= 0 else 0]
                    out_zm[l, kk] = lut_z[b if b >= 0 else 0]
                if interp:  # averaged over each step, as the in-plane impedance's blur
                    _step_average(vol, mixed, M, origins, dirs, l, r_mm, ex, ey, ez, k0, k1,
                                  out_label, gel_label, out_zp)
                    _step_average(vol, mixed, M, origins, dirs, l, r_mm, -ex, -ey, -ez, k0,
                                  k1, out_label, gel_label, out_zm)
                last = k1


@njit(cache=True)
def _step_average(vol, mixed, M, origins, dirs, l, r_mm, ex, ey, ez, k0, k1, out_label,
                  gel_label, zq):
    """``zq[l, k0 … k1]`` (the impedance along line ``l`` moved by (ex, ey, ez) mm) averaged
    over the step from each sample k − 1 to k where it changes: split at the label's
    crossing (``label_field.crossing_from``), so that a sub-sample move changes the
    out-of-plane gradient a little instead of moving a whole sample's worth of it
    (imager: the same for the in-plane impedance). From the deep end, so that sample
    k − 1 still holds its own."""
    o = (origins[l, 0] + ex, origins[l, 1] + ey, origins[l, 2] + ez)
    d = (dirs[l, 0], dirs[l, 1], dirs[l, 2])
    for kk in range(k1, k0, -1):
        if zq[l, kk] == zq[l, kk - 1] or out_label[l, kk] == gel_label \
                or out_label[l, kk - 1] == gel_label:
            continue
        lo, hi = r_mm[l, kk - 1], r_mm[l, kk]
        if hi > lo:
            f = (crossing_from(vol, mixed, M, o, d, lo, hi) - lo) / (hi - lo)
            zq[l, kk] = f * zq[l, kk - 1] + (1.0 - f) * zq[l, kk]


@njit(cache=True, parallel=True, fastmath=True)
def propagate(label, zimp, zsmooth, gel, fluid, scat, flags, lut_alpha, lut_bs, f_mhz, dr_mm,
              line_dx_mm, spec_gain, theta0_rad, lambert, r_fascia, h_label, out_src, out_att,
              out_refl, frac, tb, gb, bsq):
    """March every line: write the complex source (diffuse + specular, both multiplied by
    the two-way attenuation and transmission so far), the two-way amplitude factor and the
    intensity reflectivity R·(angle law) of every interface except air (for the body-wall
    reverberation, body_wall.reverb_power). ``frac`` (L, N), or (1, 1) for none: where
    between samples k − 1 and k an interface lies (``sample_medium``); its echo is split
    between the two in proportion. ``tb`` (L, N), or (1, 1) for none: the two-way
    transmission of bone's partial volume across the beam (``shadow_field``), which then
    takes the place of bone's (``FLAG_BONE``) loss for the beam (its ``out_att``, the
    echoes of what lies outside bone); the echoes from within a bone come from the part of
    the beam that met its surface there, attenuated by its α and its interfaces. ``gb``
    (L, N), or (1, 1) for none: the share of those echoes each run of bone samples gives
    (``partial_volume.bone_echo_gain``: a grazed edge's echo fades in with how deep the line
    goes into it), applied where the line enters the bone. ``bsq`` (L, N), or (1, 1) for
    the labels' own: the backscatter amplitude of every sample
    (``partial_volume.backscatter_blend``)."""
    L, N = label.shape
    pv = tb.shape[0] == L
    blend = bsq.shape[0] == L
    share = gb.shape[0] == L
    np_per_cm = math.log(10.0) / 20.0  # dB -> neper (amplitude)
    # the two-way attenuation of one step through each label (a product along the line
    # instead of an exponential per sample)
    step = np.empty(lut_alpha.shape[0])
    for i in range(lut_alpha.shape[0]):
        step[i] = math.exp(-2.0 * lut_alpha[i] * f_mhz * dr_mm * 0.1 * np_per_cm)
    for l in prange(L):
        att = 1.0
        trans = 1.0
        air_k = -1
        air_amp = 0.0
        rq = np.zeros(N_REVERB)  # strongest soft-tissue interfaces: sqrt(R·ang)·a(k)
        rk = np.zeros(N_REVERB, np.int64)
        z_prev = zimp[l, 0]
        lab_prev = label[l, 0]
        soft = lab_prev  # pv: bone attenuates as the tissue before it (its loss: ``tb``)
        inb = 0.0  # pv: the amplitude of the beam's part inside the bone the line is in
        miss = 0.0  # gb: the share of the line's echoes in the bone run that comes from the
        # tissue the line would cross without it (1 − the run's gb)
        for k in range(N):
            lab = label[l, k]
            fl = flags[lab]
            f = fluid[l, k]
            if (fl & (FLAG_BONE | FLAG_VESSEL | FLAG_AIR)) != 0:
                f = 0.0
            zz = zimp[l, k] * (1.0 - f) + Z_WATER * f
            al = lut_alpha[lab] * (1.0 - f) + ALPHA_WATER * f
            bs = (bsq[l, k] if blend else lut_bs[lab]) * (1.0 - f) + BS_WATER * f
            amp = att * trans
            if pv:
                amp *= tb[l, k]
            out_att[l, k] = amp  # the beam's (monotonic: the reverberation's weights)
            out_refl[l, k] = 0.0
            # pv, behind a bone's surface: its echoes (and those of its far side) come from
            # the beam's part inside it
            ab = amp
            if pv and (flags[lab_prev] & FLAG_BONE) != 0 and k > 0:
                ab = min(inb, amp) if (fl & FLAG_BONE) != 0 else inb
            elif pv and share and (fl & FLAG_BONE) != 0:
                # into a bone: the share of its echoes (a grazed edge: less); the rest from
                # the tissue before it, as if the line missed it, until the line leaves it
                ab *= gb[l, k]
                miss = 1.0 - gb[l, k]
            src = scat[l, k] * (bs * ab)
            if miss > 0.0:  # (out of the bone: the tissue after it)
                src += scat[l, k] * ((lut_bs[soft] if (fl & FLAG_BONE) != 0 else bs)
                                     * miss * amp)
                if (fl & FLAG_BONE) == 0:
                    miss = 0.0
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
                # no impedance step here (a fascia between tissues of equal impedance: the
                # smoothed gradient there is another interface's tail) or none at all
                if zz == z_prev or gn <= GRAD_EPS:  # the labels' boundary
                    ga, gl = label_normal(label, l, k, lab, dr_mm, line_dx_mm[k], h_label)
                    gn = math.sqrt(ga * ga + gl * gl)
                c = 1.0 if gn <= 0.0 else abs(ga) / gn
                th = math.acos(min(1.0, c))
                lam = lambert if (fl & FLAG_BONE) != 0 else 0.1 * lambert
                ang = math.exp(-(th / theta0_rad) ** 2) + lam * c
                spec = math.sqrt(spec_gain[k] * R * ang) * ab
                if frac.shape[0] == L:
                    out_src[l, k - 1] += (1.0 - frac[l, k]) * spec
                    spec *= frac[l, k]
                src += spec
                if (fl & FLAG_AIR) == 0:
                    out_refl[l, k] = R * ang
                if pv and ((fl | flags[lab_prev]) & FLAG_BONE) != 0:
                    # into, within or out of a bone: the part of the beam in it goes on
                    inb = ab * (1.0 - R)
                    out_refl[l, k] *= min(1.0, (ab / amp) ** 2) if amp > 0.0 else 0.0
                else:
                    trans *= 1.0 - R
                if (fl & FLAG_AIR) != 0 and R > 0.5 and air_k < 0:
                    air_k = k
                    air_amp = math.sqrt(spec_gain[k] * R * ang) * amp
                if (fl & (FLAG_AIR | FLAG_BONE)) == 0 and (flags[lab_prev] & FLAG_BONE) == 0:
                    q = math.sqrt(R * ang) * amp
                    jmin = 0
                    for j in range(1, N_REVERB):
                        if rq[j] < rq[jmin]:
                            jmin = j
                    if q > rq[jmin]:
                        rq[jmin] = q
                        rk[jmin] = k
            out_src[l, k] = src
            z_prev = zz
            lab_prev = lab
            if f == 0.0:
                if pv and (fl & FLAG_BONE) != 0:
                    att *= step[soft]
                    inb *= step[lab]
                else:
                    att *= step[lab]
                    soft = lab
            else:
                att *= math.exp(-2.0 * al * f_mhz * dr_mm * 0.1 * np_per_cm)
        # reverberation between the probe face and soft-tissue interfaces (skin, fascia):
        # down to interface i, back to the face (R_FACE), down to j and back: a ghost echo
        # at the sum of their depths (both orders of the path add coherently when i != j)
        for i in range(N_REVERB):
            for j in range(i, N_REVERB):
                kk = rk[i] + rk[j]
                if rq[i] > 0.0 and rq[j] > 0.0 and kk < N:
                    mult = 1.0 if i == j else 2.0
                    out_src[l, kk] += mult * math.sqrt(spec_gain[kk] * R_FACE) * rq[i] * rq[j]
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
